"""The WSGI application of one server worker: the managed algorithm's endpoints on one loaded Predictor.

Every bad request gets its HTTP status and a message naming what is accepted; any other fault is a 500 with
its message in the body and its traceback in the log; the worker goes on serving.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from semseg.contract.options import MAX_PAYLOAD_MB
from semseg.engines import Predictor
from semseg.serving import codecs, tta
from semseg.serving.codecs import BadRequest
from semseg.serving.tta import PLAIN, Augmentation

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
CUSTOM_ATTRIBUTES = "HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"  # the WSGI name of tta.HEADER


class App:
    """GET /ping, GET /execution-parameters, POST /invocations."""

    def __init__(
        self,
        predictor: Predictor,
        max_concurrent_transforms: int,
        max_payload_mb: int = MAX_PAYLOAD_MB,
        augmentation: Augmentation = PLAIN,
    ) -> None:
        """`augmentation`: the test-time augmentation of a request without custom attributes (SEMSEG_TTA)."""
        self.predictor = predictor
        self.augmentation = augmentation
        self.max_payload_mb = max_payload_mb
        self.execution_parameters = {
            "MaxConcurrentTransforms": max_concurrent_transforms,
            "BatchStrategy": "SingleRecord",
            "MaxPayloadInMB": max_payload_mb,
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        try:
            if path == "/ping":
                return _reply(start_response, 200, b"", "text/plain")
            if path == "/execution-parameters":
                body = json.dumps(self.execution_parameters).encode()
                return _reply(start_response, 200, body, "application/json")
            if path == "/invocations":
                if method != "POST":
                    raise BadRequest(405, "Send the image with POST /invocations")
                body, content_type = self.invoke(environ)
                return _reply(start_response, 200, body, content_type)
            raise BadRequest(404, f"No such path {path}; the server answers /ping, /invocations, /execution-parameters")
        except BadRequest as exc:
            return _reply(start_response, exc.status, exc.message.encode(), "text/plain")
        except Exception as exc:
            log.exception("Request to %s failed", path)
            return _reply(start_response, 500, f"Internal error: {type(exc).__name__}: {exc}".encode(), "text/plain")

    def invoke(self, environ: dict[str, Any]) -> tuple[bytes, str]:
        codecs.request_type(environ.get("CONTENT_TYPE"))
        accept = codecs.response_type(environ.get("HTTP_ACCEPT"))
        try:
            augmentation = tta.parse(environ.get(CUSTOM_ATTRIBUTES), self.augmentation)
        except tta.BadAttributes as exc:
            raise BadRequest(400, str(exc)) from None
        image = codecs.decode_image(_read_body(environ, self.max_payload_mb))
        if accept == codecs.PNG:
            return codecs.encode_png(tta.classes(self.predictor, image, augmentation)), accept
        if accept == codecs.JPEG:
            return codecs.encode_overlay(image, tta.classes(self.predictor, image, augmentation)), accept
        codecs.check_probabilities_fit(self.predictor.num_classes, *image.shape[:2])  # before the work
        return codecs.encode_probabilities(tta.probabilities(self.predictor, image, augmentation)), accept


def _read_body(environ: dict[str, Any], max_payload_mb: int) -> bytes:
    limit = max_payload_mb * 1024 * 1024
    length = environ.get("CONTENT_LENGTH") or ""
    too_large = BadRequest(
        413,
        f"The request body is larger than {max_payload_mb} MB (batch transform: raise MaxPayloadInMB, up to 100)",
    )
    if length.isdigit() and int(length) > limit:
        raise too_large
    body: bytes = environ["wsgi.input"].read(int(length) if length.isdigit() else limit + 1)
    if len(body) > limit:
        raise too_large
    return body


def _reply(start_response: StartResponse, status: int, body: bytes, content_type: str) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [body]
