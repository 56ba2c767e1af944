#!/usr/bin/env python3
"""A small OpenTelemetry trace receiver: OTLP/HTTP (POST /v1/traces, protobuf) and
OTLP/gRPC (TraceService/Export), decoded with the official generated classes of the
`opentelemetry-proto` package (pinned in clients/python/requirements.txt; run it with
target/clients/venv/bin/python after scripts/clients.sh).

It prints `listening http=PORT grpc=PORT` first, then one JSON line per export request:
the transport, the request's Authorization header, the resource attributes and every
span (ids in hex, attributes as plain values). `--fail N` answers the first N requests
with HTTP 503 / gRPC UNAVAILABLE, to watch an exporter retry.

    target/clients/venv/bin/python scripts/otlp-receiver.py --http 4318 --grpc 4317
"""

import argparse
import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

LOCK = threading.Lock()
STATE = {"requests": 0, "fail": 0}


def value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in any_value.kvlist_value.values}
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    return getattr(any_value, kind) if kind else None


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def record(transport, request, authorization):
    out = []
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append({
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "name": s.name,
                    "kind": s.kind,
                    "start": s.start_time_unix_nano,
                    "end": s.end_time_unix_nano,
                    "flags": s.flags,
                    "attributes": attributes(s.attributes),
                    "status": {"code": s.status.code, "message": s.status.message},
                    "scope": ss.scope.name,
                    "resource": attributes(rs.resource.attributes),
                })
    line = json.dumps({"transport": transport, "authorization": authorization, "spans": out})
    with LOCK:
        print(line, flush=True)


def should_fail():
    with LOCK:
        STATE["requests"] += 1
        return STATE["requests"] <= STATE["fail"]


class Http(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_error(404 if self.path != "/v1/traces" else 415)
            return
        if should_fail():
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        except DecodeError as e:
            self.send_error(400, f"not an ExportTraceServiceRequest: {e}")
            return
        record("http", request, self.headers.get("Authorization"))
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


class Grpc(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        if should_fail():
            context.abort(grpc.StatusCode.UNAVAILABLE, "the receiver is busy")
        metadata = dict(context.invocation_metadata())
        record("grpc", request, metadata.get("authorization"))
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", type=int, help="OTLP/HTTP port (0: any free port)")
    parser.add_argument("--grpc", type=int, help="OTLP/gRPC port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--fail", type=int, default=0, help="refuse the first N requests")
    args = parser.parse_args()
    if args.http is None and args.grpc is None:
        parser.error("name --http and/or --grpc")
    STATE["fail"] = args.fail
    ports = {}
    if args.http is not None:
        server = ThreadingHTTPServer((args.host, args.http), Http)
        ports["http"] = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
    if args.grpc is not None:
        gserver = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Grpc(), gserver)
        ports["grpc"] = gserver.add_insecure_port(f"{args.host}:{args.grpc}")
        gserver.start()
    print("listening " + " ".join(f"{k}={v}" for k, v in ports.items()), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
