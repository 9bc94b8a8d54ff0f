"""Reliability tests: each goal G1-G19 of the reliability notes (part (c)) and its figure.

``pytest tests/reliability`` runs them at CI size (under 5 minutes on 2 cores);
``pytest tests/reliability --soak`` at soak size (hours: G1 200,000 cases, G6 a 1 h
hold, G10 30 min).  Each figure-producing test prints one line
``FIGURE <goal> size=<ci|soak> key=value ...`` (repeated in the session summary);
``pytest tests/reliability -q | grep FIGURE`` collects them.

=====  ========================================  =================================
goal   what                                      test
=====  ========================================  =================================
G1/G2  no gateway 5xx, every error the JSON      test_fuzz.py
G3     body limit                                test_limits_figures.py
G4     amplification of 4 MiB bodies             test_limits_figures.py
G5     hostile JSON rejected quickly             test_limits_figures.py
G6/G7  idle SSE capacity, disconnect cleanup     test_sse_capacity.py
G8     open/abort churn: RSS slope               test_churn_leak.py
G9     client leaving cancels the call           test_unary_disconnect.py
G10    non-reading clients, send timeout         test_slow_consumer.py
G11    delivery: lost/duplicated/reordered       test_delivery.py
G12    upstream killed and restarted             test_upstream_restart.py
G13    hung upstream, deadlines                  test_upstream_hang.py
G14    upstream killed mid-stream                test_upstream_killed.py
G15    slowloris                                 test_slowloris.py
G16    header and URL limits                     test_header_limits.py
G17    SIGTERM with open streams                 test_shutdown.py
G18    startup errors: one line, no traceback    test_cli_errors.py
G19    concurrent stream cap                     test_stream_cap.py
=====  ========================================  =================================

Gateway bugs found here are strict xfails whose reason names the cause; each turns
into a failure (XPASS) once fixed, to be turned into a regression test.
"""
