"""What every tab shares: turning our errors into messages a visitor understands."""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import gradio as gr

from core.catalog import CatalogError
from core.inputs import InputError
from core.services import AssetError

log = logging.getLogger(__name__)
VISITOR_ERRORS = (InputError, CatalogError, AssetError)


def visitor_errors(fn):
    """Raise `gr.Error` with our message for bad input or a broken asset; hide internals of anything else."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except VISITOR_ERRORS as e:
            raise gr.Error(str(e), print_exception=False) from None
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error("Something went wrong on our side; please try again.", print_exception=False) from None

    return wrapper


def upload_dirs() -> list[Path]:
    """The only folders an uploaded file may be read from: gradio's upload cache."""
    from gradio.utils import get_upload_folder

    return [Path(get_upload_folder()).resolve()]


def notices_markdown(notices: list[str]) -> str:
    return "\n".join(f"ℹ️ {n}" for n in notices)
