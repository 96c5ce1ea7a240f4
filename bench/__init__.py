"""The axis benchmark: how fast a real server takes in, fans out and hands back packages.

Run it with ``bin/bench`` (``--quick`` for a smoke check under a minute, ``--workers N``,
``--compare-workers``, ``--json FILE``, ``--wait-quiet SECONDS`` on a shared machine,
``--keep`` to keep the data directories and server logs). It is not a test: it prints
figures beside the targets the axis is held to, with the machine it ran on, so two runs on
two machines can be told apart.

Parts: ``corpus`` makes and signs the packages before anything is timed (signing is the
senders' work, not the axis's; ``signer`` does it in ~1 ms a package from a signxml-made
template, where signxml itself takes ~50 ms), ``server`` prepares a data directory (agency
tokens, connected systems) and runs ``python -m axis serve`` as a subprocess, ``load`` is the
load generator (its own process, with a small HTTP/1.1 client so it takes as little of the
machine as it can; ``sdk`` builds the VDXP requests as VNPT's SDK sends them), ``ceiling``
measures how many signature checks the machine can do at all, and ``report`` prints the table.

For issue 14's aiosqlite A/B, ``aiosqlite_backend`` holds bench-only variants of the SQLite
backend and ``variant_server`` serves the unchanged app over one of them (``--sqlite-driver``,
``--compare-sqlite-drivers``). Other benchmarks: ``pg`` (PostgreSQL, one node and two),
``push`` (the push worker), ``signature_compare`` (python-xmlsec against signxml); each takes
``--quick``.
"""
