"""Job worker processes: the plan a gateway hands a worker, the typed messages on
their pipe (plan), the process that runs one job's program under CrypTen
(process), and the gateway's side that starts and watches them (runner)."""
