"""ai4mars_perception: ament_python package (colcon) that also installs into a plain venv with pip."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "ai4mars_perception"

setup(
    name=PACKAGE,
    version="0.2.0",
    description="AI4Mars terrain segmentation node for ROS 2 (U-Net ResNet-18, ONNX Runtime)",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/samples/navcam", glob("samples/navcam/*.JPG")),  # the demo's Navcam sequence
        # and its AI4Mars rover (MXY) and beyond-30-m (RNG-30m) masks, the demo's exclusion masks
        (f"share/{PACKAGE}/samples/navcam/mxy", glob("samples/navcam/mxy/*.png")),
        (f"share/{PACKAGE}/samples/navcam/rng-30m", glob("samples/navcam/rng-30m/*.png")),
        *([(f"share/{PACKAGE}/models", glob("models/*.onnx") + glob("models/*.md"))] if glob("models/*.onnx") else []),
    ],
    python_requires=">=3.10",
    # ROS client libraries come from the ROS install or requirements/ros.txt, never from here.
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "onnxruntime>=1.17",
        "rosbags>=0.10",
        "tqdm",
        "pyyaml",  # the node's params YAML, read by bag process / segment --params-file
        "pillow",  # image decoding with the size checked before decoding, no decoder noise on stderr
    ],
    # gpu: ONNX Runtime's CUDA/TensorRT providers; torch: the PyTorch backend (ONNX models converted at load time
    # with onnx2torch, TorchScript exports, learner .pkl)
    extras_require={"gpu": ["onnxruntime-gpu>=1.17"], "torch": ["torch>=2.1", "onnx>=1.16", "onnx2torch>=1.5"]},
    zip_safe=True,
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "terrain_segmentation = ai4mars_perception.node:main",
            "ai4mars-perception = ai4mars_perception.tools.cli:main",
        ],
    },
)
