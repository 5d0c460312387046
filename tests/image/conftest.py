"""The image's boot test is slow (minutes, under qemu-user) and needs a built root
file system and root privileges: it is collected only when ``make test-image``
points APPLIANCE_IMAGE_TEST at that root file system, never by a plain ``pytest``."""

import os

if not os.environ.get("APPLIANCE_IMAGE_TEST"):
    collect_ignore_glob = ["test_*.py"]
