"""moto's server with two changes: requests are applied one at a time, and a transaction
backs each table up once (`back_up_each_table_once_per_transaction`).

moto answers on many threads, and its DynamoDB backend checks a condition and writes the
item in separate steps, so two concurrent conditional writes can both succeed. DynamoDB
never lets that happen, and our idempotency and counters rely on it. A global lock around
each request restores DynamoDB's per-request atomicity; connections are still accepted on
many threads.

--keep-alive serves it with waitress instead of werkzeug's development server, which answers
every request with `Connection: close`, so each SDK request pays a new TCP connection, which
DynamoDB's kept-alive connections never cost. `make bench` uses it, so the sender's CPU per
message does not count connection set-up. The tests keep werkzeug: under the 200-client load
test waitress queued requests for seconds. Usage: moto_server.py [-H HOST] [-p PORT] [--keep-alive]
"""

import argparse
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def back_up_each_table_once_per_transaction() -> None:
    """moto backs up a table for a transaction's rollback once per *item* (a deep copy of
    the whole table each time): a batch transaction of 20 items on a table of thousands costs
    seconds, under the lock above. One copy per table per transaction is the same backup."""
    import copy

    from moto.dynamodb import models

    transact = models.DynamoDBBackend.transact_write_items

    class OncePerTable:
        def __init__(self) -> None:
            self.tables: dict[int, object] = {}

        def deepcopy(self, obj, memo=None):
            if not isinstance(obj, models.Table):
                return copy.deepcopy(obj, memo)
            if id(obj) not in self.tables:
                self.tables[id(obj)] = copy.deepcopy(obj, memo)
            return self.tables[id(obj)]

    def transact_write_items(self, transact_items):
        models.copy = OncePerTable()
        try:
            return transact(self, transact_items)
        finally:
            models.copy = copy

    models.DynamoDBBackend.transact_write_items = transact_write_items


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument("--keep-alive", action="store_true")
    args = parser.parse_args()

    back_up_each_table_once_per_transaction()
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        with lock:
            # Read the whole response inside the lock: the request's effects are complete.
            return [b"".join(app(environ, start_response))]

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.keep_alive:
        import waitress

        waitress.serve(serialized, host=args.host, port=args.port, threads=8, _quiet=True)
        return
    run_simple(
        args.host,
        args.port,
        serialized,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
