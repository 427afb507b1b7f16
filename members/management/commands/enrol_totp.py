import io
from typing import Any

import qrcode
from django.core.management.base import CommandParser

from forum.actors import COMMAND_ACTOR
from members.staff import totp_device_enrol

from ._base import JsonCommand


class Command(JsonCommand):
    help = (
        "Enrol a TOTP device for a staff user (the admin asks for its code unless "
        "DJANGO_DEBUG): prints a QR code and the otpauth URL for an authenticator app."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="device name")
        parser.add_argument("--no-qr", action="store_true", help="print only the URL")

    def run(self, **options: Any) -> dict[str, Any]:
        device = totp_device_enrol(
            username=options["username"], name=options["name"], actor=COMMAND_ACTOR
        )
        url = device.config_url
        if not options["no_qr"]:
            code = qrcode.QRCode(border=1)
            code.add_data(url)
            drawing = io.StringIO()
            code.print_ascii(out=drawing, invert=True)
            self.stdout.write(drawing.getvalue())
        return {"user": options["username"], "device": device.persistent_id, "otpauth_url": url}
