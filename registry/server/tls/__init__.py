"""HTTPS for the registry itself: certificates from files, a local CA, or ACME (RFC 8555).

- `context`: the SSL context gunicorn's workers use; it re-reads the certificate files when they
  change on disk, so a renewed or swapped certificate is served from the next connection on,
  and connections already open keep theirs (nothing is dropped).
- `certs`: reading PEM certificates (names, expiry) and checking a key matches.
- `localca`: `pyrkt-registry tls init`'s private CA and a certificate for the hosted domains.
- `models` / `store`: ACME state in the database (account key, certificate, challenges, status,
  a renewal lock) so that every registry host behind a balancer shares it.
- `acme`: ordering a certificate with the `acme` library (http-01 challenges).
- `sidecar`: the process `serve` starts beside gunicorn for the plain-HTTP listener (redirects
  to HTTPS, answers http-01 challenges) and the renewal loop.
"""
