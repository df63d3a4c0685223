"""Stage 6 (``cot``): chain-of-thought with ``<output_image>`` placeholders, from a chat API or a template."""

from .api import ChatCoT, CotConfig
from .checks import check_cot
from .template import template_cot

__all__ = ["ChatCoT", "CotConfig", "check_cot", "template_cot"]
