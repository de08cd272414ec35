"""Install sbnn_keras: `pip install -e .[test]` (see README for the one-command set-up)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# Versions verified to work together (docs/install.md): TF 2.16 + legacy Keras for
# larq, LCE 0.16 built against TF 2.16.1, numpy < 2 for larq, protobuf < 5 for TF 2.16.
INSTALL_REQUIRES = [
    "tensorflow>=2.16.1,<2.17",
    "tf-keras>=2.16.0,<2.17",
    "larq==0.14.0",
    "larq-compute-engine==0.16.0",
    "keras-tuner>=1.4.7,<1.5",
    "numpy>=1.23,<2",
    "protobuf>=3.20.3,<5",
    "tensorflow-datasets>=4.9.3,<=4.9.10",
    "tensorflow-metadata>=1.14,<=1.16.1",
    "matplotlib>=3.7",
    "tqdm>=4.60",
]

EXTRAS = {
    "test": ["pytest>=7.4", "hypothesis>=6.80", "scikit-learn>=1.3"],
}

setup(
    name="sbnn_keras",
    version="0.1.0",
    description="Sparse binary neural networks (SBNN) for Keras/larq, with TFLite export",
    long_description=(HERE / "README.md").read_text(encoding="utf-8")
    if (HERE / "README.md").exists()
    else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9,<3.13",
    packages=find_packages(include=["sbnn_keras", "sbnn_keras.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": []},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
