import pathlib
import sys

# Tests run against the package in this checkout, not an installed one.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
