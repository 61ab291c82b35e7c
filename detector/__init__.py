"""People and face detection in video and images.

Importing this package (or `detector.errors`, `detector.detections`, `detector.analyzer`) never imports TensorFlow:
the CLI and the pipeline import it at startup, and only the model modules load TensorFlow, when a model is built.
"""
