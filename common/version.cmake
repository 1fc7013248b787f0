# Writes version.cc (cmake -P, at every build; see version.h) from
# version.cc.in. In: SOURCE_DIR, OUTPUT, COWBLK_VERSION, and COWBLK_COMMIT
# (empty: ask git). The file is replaced only when its text changes, so an
# unchanged commit rebuilds nothing.
set(COWBLK_GIT_COMMIT unknown)
find_package(Git QUIET)
if(NOT COWBLK_COMMIT STREQUAL "")
  set(COWBLK_GIT_COMMIT ${COWBLK_COMMIT})
elseif(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} describe --always --dirty --abbrev=12
    WORKING_DIRECTORY ${SOURCE_DIR}
    OUTPUT_VARIABLE described OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE failed ERROR_QUIET)
  if(NOT failed AND described)
    set(COWBLK_GIT_COMMIT ${described})
  endif()
endif()
configure_file(${SOURCE_DIR}/common/version.cc.in ${OUTPUT}.tmp @ONLY)
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUTPUT}.tmp)
