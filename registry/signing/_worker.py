"""Child process of StreamingVerifier: verify a detached signature over standard input.

Run as `python _worker.py SIGNATURE-FILE KEYS-FILE` with the signed data piped to stdin.
pysequoia reads a pipe as a stream (it maps only regular files) and holds the GIL while it
verifies, so a separate process is what lets the parent keep downloading meanwhile.
Prints `OK <certificate fingerprint>` or `ERR <reason>` and exits 0 or 1. Imports only
pysequoia so it starts fast and needs no installed pyrkt.
"""

import sys

import pysequoia


def main(signature_file: str, keys_file: str) -> int:
    try:
        signature = pysequoia.Sig.from_file(signature_file)
        certs = pysequoia.Cert.split_file(keys_file)
        result = pysequoia.verify(store=lambda _ids: certs, file="/dev/stdin", signature=signature)
        [valid, *_] = result.valid_sigs
        print(f"OK {str(valid.certificate).upper()}", flush=True)
        return 0
    except Exception as error:  # every failure is reported to the parent as one line
        text = str(error).strip().splitlines()
        print(f"ERR {text[0] if text else type(error).__name__}", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
