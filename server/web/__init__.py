"""The WebSocket gateway's port: the kefu protocol in binary WebSocket messages, the console and widget as static
files, and staff sign-in."""
