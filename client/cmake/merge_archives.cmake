# Runs `AR -M < SCRIPT` (an MRI script that merges static archives).
execute_process(COMMAND ${AR} -M INPUT_FILE ${SCRIPT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${AR} -M < ${SCRIPT} failed: ${rc}")
endif()
