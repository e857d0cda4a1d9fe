"""A test certificate authority made with the `openssl` CLI: a CA and server certificates it signs, for the
HTTPS suites. Nothing is installed system-wide; clients trust the CA through an ssl.SSLContext (Python),
--cacert (curl) or the browsers' test options."""

from __future__ import annotations

import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

OPENSSL = "/usr/bin/openssl"


def _run(*args: str) -> None:
    r = subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stderr}")


@dataclass
class Pair:
    cert: Path  # PEM: the server certificate (the CA signs it directly: the chain is this one certificate)
    key: Path
    serial: str  # hex, as openssl prints it


class TestCA:
    """A CA in `directory` (a temporary one by default) with an EC P-256 key, valid for a day."""

    def __init__(self, directory: Optional[Path] = None, name: str = "mediagate test CA") -> None:
        self.dir = Path(directory or tempfile.mkdtemp(prefix="mediagate-ca-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = self.dir / "ca.key"
        self.cert = self.dir / "ca.pem"
        self._count = 0
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(self.key), "-out", str(self.cert), "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def issue(self, name: str = "server", cn: str = "mediagate test server",
              sans: str = "IP:127.0.0.1,DNS:localhost", days: int = 2) -> Pair:
        """A server certificate and key for `sans`, signed by this CA."""
        self._count += 1
        key = self.dir / f"{name}.key"
        csr = self.dir / f"{name}.csr"
        cert = self.dir / f"{name}.pem"
        ext = self.dir / f"{name}.ext"
        ext.write_text(f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                       "extendedKeyUsage=serverAuth\n")
        _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
             "-out", str(csr), "-subj", f"/CN={cn}")
        serial = f"{0x1000 + self._count:x}"
        _run("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key), "-set_serial",
             f"0x{serial}", "-days", str(days), "-extfile", str(ext), "-out", str(cert))
        return Pair(cert, key, serial.upper())

    def client_context(self, **kwargs) -> ssl.SSLContext:
        """A client context that trusts only this CA and checks the host name (127.0.0.1 is an IP SAN)."""
        ctx = ssl.create_default_context(cafile=str(self.cert))
        for k, v in kwargs.items():
            setattr(ctx, k, v)
        return ctx


def peer_serial(sock: ssl.SSLSocket) -> str:
    """The serial number of the certificate the server presented, in hex as openssl prints it."""
    return f"{sock.getpeercert()['serialNumber']}".upper().lstrip("0")
