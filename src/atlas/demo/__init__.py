"""The sample library and the end-to-end demo."""

from atlas.demo.build import CORRUPT_FILE_NAME, DemoItem, DemoLibrary, build_library, load_items
from atlas.demo.run import DEMO_QUERY, DemoReport, LearningReport, run_demo

__all__ = [
    "CORRUPT_FILE_NAME",
    "DEMO_QUERY",
    "DemoItem",
    "DemoLibrary",
    "DemoReport",
    "LearningReport",
    "build_library",
    "load_items",
    "run_demo",
]
