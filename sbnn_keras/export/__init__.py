"""Export room: a trained Keras model to a ``.tflite`` file.

``convert`` (the entry point and its report), ``lowering`` (binary layers rewritten
into the form LCE's converter recognises) and ``compress`` (the flatbuffer rewrites:
sparse filters, fused ops). The formats it writes are read by ``sbnn_runtime``
(``sparse_format``, ``tflite_model``). See docs/conversion.md and docs/architecture.md.
"""
