# cmake -DPLUGIN=path/NAME.so -P xlhost_plugin_checksum.cmake writes NAME.so.md5 beside it
# (md5sum's format). The host compares it with the file before loading it: a plugin
# damaged after its build (flipped bytes, a bad copy) is refused instead of crashing later.
file(MD5 "${PLUGIN}" digest)
get_filename_component(name "${PLUGIN}" NAME)
file(WRITE "${PLUGIN}.md5" "${digest}  ${name}\n")
