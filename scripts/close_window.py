"""Asks an X11 window to close the way a window manager does (WM_DELETE_WINDOW), so the app's
close handling runs: `python scripts/close_window.py nerlab` (needs python-xlib)."""
import sys

from Xlib import X, display, protocol

name = sys.argv[1] if len(sys.argv) > 1 else "nerlab"
d = display.Display()
wm_protocols = d.intern_atom("WM_PROTOCOLS")
wm_delete = d.intern_atom("WM_DELETE_WINDOW")


def find(w):
    if w.get_wm_name() == name:
        return w
    for c in w.query_tree().children:
        found = find(c)
        if found:
            return found
    return None


w = find(d.screen().root)
if w is None:
    sys.exit(f"no window named {name!r}")
ev = protocol.event.ClientMessage(window=w, client_type=wm_protocols, data=(32, [wm_delete, X.CurrentTime, 0, 0, 0]))
w.send_event(ev, event_mask=X.NoEventMask)
d.flush()
print(f"asked window {w.id:#x} to close")
