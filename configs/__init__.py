"""The experiment configs shipped with jaxsr: one recipe per file, ``get_config(arg)``.

Each file starts from ``jaxsr.config.base_config()`` and changes what its
paper's recipe changes (see its docstring); ``arg`` ``"tiny"`` shrinks it to
a few minutes on a CPU. In the repository the folder stays at the top level,
where the README's commands name it (``--config=configs/srgan.py``); an
install ships it as the package ``jaxsr.configs``, so ``--config=srgan`` or
``--config=srgan:tiny`` finds it from any working directory.
"""
