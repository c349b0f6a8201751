# This file is private to the wharf.network collection: its API may change at any time.
"""wharf.network's embedded DNS resolver: the daemon, one per host namespace, a program of its own.

It answers on UDP and TCP port 53 of each network gateway listed in the state file that ``container_dns`` writes
(``_dns/state.resolver_state``), and chooses every answer by **who asks**: the source address gives the asker's
view (the names of the networks it is on). At reload every answer of every view is rendered to wire format once,
so that the per-query path only joins bytes; the rest (malformed or unusual queries, forwarding, TCP) uses
dnspython.

One job per file:

- ``views.py``: who asks (a source address → its view and upstream servers);
- ``tables.py``: the state file → the precomputed tables;
- ``answer.py``: answering (the hot path, the slow path, rendering);
- ``forward.py``: forwarding to the upstream servers (UDP jobs in flight, bounded; TCP);
- ``listen.py``: the listening sockets (binds, retries);
- ``tcp.py``: TCP clients (a thread per connection, slots per source);
- ``loop.py``: the server (the selector loop, reload, status file, log);
- ``program.py``: the process (command line, supervisor, daemonizing).

Standard library and dnspython only, and the package imports itself relatively only: ``_dns/daemon.py`` copies
these files to the host as ``STATE_DIR/server/`` beside an entry point ``STATE_DIR/server.py`` that it writes, and
runs that with the module's own Python; there the package is ``server``, with no ``ansible_collections`` around.
"""

# what the module copies to the host (a test checks that it names every file of the package)
FILES = (
    "__init__.py",
    "answer.py",
    "forward.py",
    "listen.py",
    "loop.py",
    "program.py",
    "tables.py",
    "tcp.py",
    "views.py",
)
