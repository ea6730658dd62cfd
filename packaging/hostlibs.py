"""Which shared libraries the bundle leaves to the host (one list, used by assemble.py and check_isolation.py)."""

import re

# Libraries the host provides and the bundle must NOT carry: glibc and the C++ runtime (manylinux's baseline), and
# the graphics / desktop / GPU-driver stack, which has to match the host's display server and driver.
HOST_PROVIDED = re.compile(
    r"^(linux-vdso|ld-linux[-\w]*|libc|libm|libdl|libpthread|librt|libutil|libresolv|libanl|libcrypt|libnsl"
    r"|libgcc_s|libstdc\+\+|libatomic"
    r"|libGL\w*|libEGL|libOpenGL|libGLX\w*|libGLdispatch|libGLESv2|libdrm|libgbm|libvulkan|libwayland-[-\w]+"
    r"|libmvec|libX[-\w]+|libxcb[-\w]*|libxkbcommon[-\w]*|libSM|libICE|libfontconfig|libfreetype|libdbus-1"
    r"|lib(glib|gobject|gthread|gio|gmodule)-2\.0|libgtk-3|libgdk-3|libgdk_pixbuf-2\.0|libatk-1\.0|libpango\w*-1\.0"
    r"|libcairo[-\w]*|libharfbuzz"
    r"|libcuda|libnvidia-[-\w]+|libasound|libpulse[-\w]*|libudev|libsystemd|libxshmfence|libmtdev|libinput"
    r"|libcups|libgssapi_krb5|libkrb5|libk5crypto|libcom_err)\.so(\.[\d.]+)?$"
)
