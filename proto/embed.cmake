# Writes the bytes of IN as a C++ array in OUT (cmake -P; no xxd needed).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" len)
math(EXPR size "${len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT}
  "// Generated from the descriptor set: every served .proto with comments.\n"
  "#include <cstddef>\n"
  "namespace cowblk::proto {\n"
  "extern const unsigned char kDescriptorSet[] = {${bytes}};\n"
  "extern const size_t kDescriptorSetSize = ${size};\n"
  "}  // namespace cowblk::proto\n")
