"""The exchange: secret-shared tensors between parties over mutual-TLS gRPC.

- `frames`: a tensor <-> a header and ~1 MiB chunks (and back, validated).
- `inbox`: frames received, by (session, source party, tag), until taken.
- `service`: the ExchangeService servicer that accepts peers' streams.
- `links`: this party's outbound stream to each peer, with a bounded window.
- `node`: a party's endpoint tying these together behind a blocking API.
- `waiting`: how the program's thread waits: on a loop thread, or driving the loop.
"""
