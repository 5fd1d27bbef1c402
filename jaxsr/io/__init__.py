"""Reading radiographs from image files."""
from jaxsr.io.images import IMAGE_EXTENSIONS
from jaxsr.io.images import ImageNotFoundError
from jaxsr.io.images import ImageReadError
from jaxsr.io.images import list_images
from jaxsr.io.images import Radiograph
from jaxsr.io.images import read_image
from jaxsr.io.levels import to_levels
