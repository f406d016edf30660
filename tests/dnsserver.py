"""A tiny authoritative DNS server on loopback for tests: answers from a dict, over UDP.

``{("autoconfig.shop.example", "CNAME"): ["panel.hoster.example."]}``; a name it has no
records for at all is NXDOMAIN, a known name without that type an empty answer (NoAnswer).
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class LocalDNS:
    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = {
            (name.lower().rstrip("."), rtype): v for (name, rtype), v in records.items()
        }
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.queries: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> LocalDNS:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, client = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.sock.sendto(self.answer(dns.message.from_wire(data)).to_wire(), client)

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rtype))
        values = self.records.get((name, rtype))
        if values:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 300, "IN", rtype, values)
            )
        elif not any(known == name for known, _type in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response
