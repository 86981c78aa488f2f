"""An OTLP/HTTP trace receiver for the end-to-end tests: accepts exports on /v1/traces in
http/protobuf (decoded with the opentelemetry-proto package) or http/json, and appends each span
to a file as one JSON line, with the time it arrived:

    {"traceId", "spanId", "parentSpanId", "name", "kind", "service", "attributes": {...},
     "receivedMs"}

Span and trace ids are lowercase hex, as in OTLP's JSON; attribute values are strings, numbers
or booleans. Listens on 127.0.0.1 and prints its port on its first line of stdout.

    python3 scripts/otlp-receiver.py SPANS_FILE
"""

import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}


def hex_id(value):
    """An id as OTLP's JSON has it (hex); MessageToDict gives protobuf bytes as base64."""
    if not value:
        return ""
    try:
        return base64.b64decode(value).hex()
    except ValueError:
        return value


def plain(value):
    """An AnyValue as a plain JSON value."""
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:
        return int(value["intValue"])
    if "arrayValue" in value:
        return [plain(item) for item in value["arrayValue"].get("values", [])]
    return value


def attributes(items):
    return {item["key"]: plain(item.get("value", {})) for item in items or []}


def spans_of(export, protobuf):
    """The spans of one export, whatever its encoding, in OTLP's JSON form."""
    for resource in export.get("resourceSpans", []):
        service = attributes(resource.get("resource", {}).get("attributes")).get("service.name")
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                ids = hex_id if protobuf else (lambda value: value or "")
                kind = span.get("kind", 0)
                yield {
                    "traceId": ids(span.get("traceId")),
                    "spanId": ids(span.get("spanId")),
                    "parentSpanId": ids(span.get("parentSpanId")),
                    "name": span.get("name"),
                    "kind": KINDS.get(kind, kind),
                    "service": service,
                    "attributes": attributes(span.get("attributes")),
                }


class Receiver(BaseHTTPRequestHandler):
    lock = threading.Lock()
    out = None

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        protobuf = self.headers.get("content-type", "").startswith("application/x-protobuf")
        try:
            if protobuf:
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                export = MessageToDict(request)
            else:
                export = json.loads(body)
        except Exception as error:  # a malformed export is the test's finding, not a crash
            self.send_error(400, f"undecodable export: {error}")
            return
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        received = int(time.time() * 1000)
        with self.lock:
            for span in spans_of(export, protobuf):
                span["receivedMs"] = received
                self.out.write(json.dumps(span) + "\n")
            self.out.flush()
        if protobuf:
            reply, kind = ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf"
        else:
            reply, kind = b"{}", "application/json"
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def main():
    Receiver.out = open(sys.argv[1], "a", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
