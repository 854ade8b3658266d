"""The outputs layer: the results folder, its figures and the HTML report."""
