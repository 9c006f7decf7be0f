"""Example programs (not installed with the package): see examples/tf1/."""
