"""Make sure TensorFlow runs with legacy Keras (tf_keras), which larq needs.

This module must be imported before TensorFlow. It sets ``TF_USE_LEGACY_KERAS=1``
when TensorFlow has not been imported yet, and refuses to continue, with an
explanation of what to do, when TensorFlow was already imported with Keras 3.
"""

import os
import sys

_HOW_TO_FIX = (
    "sbnn_keras (like larq) needs legacy Keras 2 (the 'tf-keras' package), but "
    "TensorFlow was already imported with Keras 3. Either import sbnn_keras before "
    "tensorflow, or set the environment variable TF_USE_LEGACY_KERAS=1 before "
    "starting Python (e.g. `export TF_USE_LEGACY_KERAS=1`)."
)


def select_legacy_keras() -> None:
    """What ``import sbnn_keras`` does: the cheap half of ``ensure_legacy_keras``.

    Before TensorFlow is imported it only sets ``TF_USE_LEGACY_KERAS=1`` (or refuses a
    conflicting value), so importing the package imports no TensorFlow; when
    TensorFlow is already imported it runs the full check at once.

    Raises:
        ImportError: as ``ensure_legacy_keras``.
    """
    if "tensorflow" in sys.modules:
        ensure_legacy_keras()
        return
    _select_before_tensorflow()


def _select_before_tensorflow() -> None:
    value = os.environ.get("TF_USE_LEGACY_KERAS")
    if value not in (None, "1", "true", "True"):
        raise ImportError(
            f"TF_USE_LEGACY_KERAS is set to {value!r}; sbnn_keras needs it to be "
            "'1' (legacy Keras 2). Unset it or set it to 1."
        )
    os.environ["TF_USE_LEGACY_KERAS"] = "1"


def ensure_legacy_keras() -> None:
    """Select tf_keras for ``tf.keras`` or raise ``ImportError`` if it is too late.

    Raises:
        ImportError: TensorFlow was imported before with ``tf.keras`` bound to
            Keras 3, or ``tf_keras`` is not installed.
    """
    if "tensorflow" not in sys.modules:
        _select_before_tensorflow()
    try:
        import tf_keras  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "sbnn_keras needs the 'tf-keras' package (pip install 'tf-keras~=2.16.0')."
        ) from err
    import tensorflow as tf

    module = getattr(tf.keras.Model, "__module__", "")
    if not module.startswith("tf_keras"):
        raise ImportError(f"{_HOW_TO_FIX} (tf.keras.Model comes from {module!r}.)")
    exclude_tf_keras_from_autograph()


def exclude_tf_keras_from_autograph() -> bool:
    """Stop AutoGraph from converting tf_keras' own code (idempotent).

    TensorFlow 2.16's AutoGraph leaves the ``keras`` package alone but not
    ``tf_keras`` (legacy Keras under its new name), so every ``tf.function`` of a
    Keras model re-transpiles Keras internals, which makes first training steps
    slow (docs/examples.md has the measurement). ``keras`` was exempt in
    TF <= 2.15, so this restores the old behaviour; user code, larq's and
    sbnn_keras' layers and quantizers are still converted. Applied when sbnn_keras
    is imported. Returns True if the rule was added now.
    """
    try:
        from tensorflow.python.autograph.core import config as ag_config
    except ImportError:  # pragma: no cover - private module moved
        return False
    rules = tuple(ag_config.CONVERSION_RULES)
    if any(getattr(rule, "_prefix", None) == "tf_keras" for rule in rules):
        return False
    ag_config.CONVERSION_RULES = (ag_config.DoNotConvert("tf_keras"),) + rules
    return True
