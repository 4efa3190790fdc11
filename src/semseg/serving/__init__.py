"""Inference in the training image: `serve` runs an HTTP server with the managed algorithm's endpoint contract
(GET /ping, POST /invocations, GET /execution-parameters) on a trained model folder."""
