"""Prints every message of a Maildir as JSON: [{to, subject, text, html, file}].

Used by the browser tests to read the mail that Tessera sent to the aiosmtpd test server;
Python's email package decodes quoted-printable, base64 and RFC 2047 headers for us.
Usage: python read_maildir.py MAILDIR
"""
import email
import email.policy
import json
import os
import sys


def bodies(message):
    text, html = "", ""
    for part in message.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and not text:
            text = part.get_content()
        elif ctype == "text/html" and not html:
            html = part.get_content()
    return text, html


def main(maildir):
    out = []
    for sub in ("new", "cur"):
        folder = os.path.join(maildir, sub)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                message = email.message_from_binary_file(fh, policy=email.policy.default)
            text, html = bodies(message)
            out.append({
                "file": path,
                "to": str(message.get("To", "")),
                "subject": str(message.get("Subject", "")),
                "text": text,
                "html": html,
            })
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
