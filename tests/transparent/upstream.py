"""The pod test's upstream on the "internet" side: HTTPS (a test CA's certificate) and plain HTTP,
recording what each request carried as one JSON line, so the test can tell what the proxy injected."""
import http.server
import json
import socket
import socketserver
import ssl
import sys
import threading

record_path, cert, key, https_port, http_port, banner_port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        entry = {
            "port": self.server.server_address[1],
            "path": self.path,
            "host": self.headers.get("Host"),
            "authorization": self.headers.get("Authorization"),
            "x-api-key": self.headers.get("X-Api-Key"),
            "peer": self.client_address[0],
            "sni": getattr(self.connection, "server_hostname", None),
        }
        with lock, open(record_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        body = ("upstream ok " + self.path + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class DualStackServer(http.server.ThreadingHTTPServer):
    # "::" with IPV6_V6ONLY off accepts IPv4 (as mapped addresses) and IPv6 alike.
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def serve(port, tls):
    server = DualStackServer(("::", port), Handler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def serve_banner(port):
    """Neither TLS nor HTTP, and the server speaks first (like SMTP): a banner, then each line echoed."""

    class Banner(socketserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(b"220 pod-test banner\n")
            for line in self.rfile:
                self.wfile.write(b"echo " + line)

    class Server(socketserver.ThreadingTCPServer):
        address_family = socket.AF_INET6
        allow_reuse_address = True
        daemon_threads = True

    Server(("::", port), Banner).serve_forever()


threading.Thread(target=serve_banner, args=(banner_port,), daemon=True).start()
threading.Thread(target=serve, args=(http_port, False), daemon=True).start()
serve(https_port, True)
