"""The face: the `floe` command line, the demo and the Lambda packaging. It may import every other layer."""
