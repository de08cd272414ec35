"""Native libraries built from tflite/ (libsbnn_delegate.so is placed here by setup.py)."""
