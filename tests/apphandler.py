"""One way to serve a pure emulated Composer app (``app.handle``) over a plain ``http.server`` in tests."""

from http.server import BaseHTTPRequestHandler


def app_handler(app):
    """A request handler class answering GET and HEAD with *app*, its dist URLs on the server's own address."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self):
            host, port = self.server.server_address[:2]
            reply = app.handle(self.command, self.path, dict(self.headers.items()), base_url=f"http://{host}:{port}")
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_HEAD = _answer

        def log_message(self, *args):
            pass

    return Handler
