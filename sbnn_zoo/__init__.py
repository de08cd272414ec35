"""Applications built on sbnn_keras: the reproduction zoo and the demo.

``zoo`` (IR-Net ResNet-18, ReActNet-18 and their building blocks, CIFAR pipeline),
``models`` (the Fashion-MNIST demo networks), ``datasets`` (Fashion-MNIST loading),
``demo`` (``python -m sbnn_zoo.demo``, ``make demo``) and ``deploy_report``. Nothing in
``sbnn_keras`` or ``sbnn_runtime`` imports this package (docs/architecture.md).
"""
