"""Calls to an https:// peer verify its certificate, though the client builds its TLS context only on such a call."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared import peers


def self_signed(directory) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now)
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "peer.pem", directory / "peer.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
    await writer.drain()
    writer.close()


def test_an_https_peer_with_a_certificate_nobody_trusts_is_refused(tmp_path):
    cert_file, key_file = self_signed(tmp_path)
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert_file, key_file)

    async def scenario() -> tuple[str, int]:
        server = await asyncio.start_server(answer_ok, "127.0.0.1", 0, ssl=served)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        async with server:
            try:
                await peers.client().get(url)
                refused = "answered"
            except httpx.ConnectError as error:
                refused = str(error)
            trusting = ssl.create_default_context(cafile=cert_file)  # the same server, for a caller trusting it
            async with httpx.AsyncClient(verify=trusting) as client:
                status = (await client.get(url)).status_code
        return refused, status

    refused, status_when_trusted = asyncio.run(scenario())
    assert "CERTIFICATE_VERIFY_FAILED" in refused
    assert status_when_trusted == 200


def test_the_peer_client_loads_no_certificate_authority_until_an_https_call():
    async def loaded_authorities() -> int:
        client = peers.client()
        plain = client._transport_for_url(httpx.URL("http://peer/"))
        return plain._pool._ssl_context.cert_store_stats()["x509_ca"]  # httpx's default context: the certifi bundle

    assert asyncio.run(loaded_authorities()) == 0
