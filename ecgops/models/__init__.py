"""Model definitions: classical pipelines, neural networks (nets/) and the beat encoder."""
