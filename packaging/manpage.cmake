# cmake -DEXE=mediagate -DHELP2MAN=help2man -DGZIP=gzip -DINCLUDE=mediagate.h2m -DOUTPUT=mediagate.1.gz -P manpage.cmake
# Writes the man page: help2man over `mediagate --help` and `--version`, with every subcommand's --help as the
# COMMANDS section and the hand-written sections of mediagate.h2m (environment, files, signals).
get_filename_component(work ${OUTPUT} DIRECTORY)
file(MAKE_DIRECTORY ${work})

set(commands "[COMMANDS]\n")
foreach(sub serve scan ls put sign)
  execute_process(COMMAND ${EXE} ${sub} --help OUTPUT_VARIABLE text RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${EXE} ${sub} --help failed (${rc})")
  endif()
  string(REPLACE "Usage: ${EXE} " "Usage: mediagate " text "${text}")  # not the build directory's path
  # roff: a backslash is \e; a line starting with '.' or a quote would be a request.
  string(REPLACE "\\" "\\e" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" text "${text}")
  string(APPEND commands ".SS \"mediagate ${sub}\"\n.nf\n${text}.fi\n")
endforeach()
file(READ ${INCLUDE} hand_written)
file(WRITE ${work}/mediagate.h2m.generated "${commands}\n${hand_written}")

execute_process(COMMAND ${HELP2MAN} --no-info --section=1
                        "--name=stream media from a directory or S3-compatible storage to browsers"
                        --include=${work}/mediagate.h2m.generated --output=${work}/mediagate.1 ${EXE}
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "help2man failed (${rc}): ${err}")
endif()
execute_process(COMMAND ${GZIP} -9nf ${work}/mediagate.1 RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT EXISTS ${OUTPUT})
  message(FATAL_ERROR "gzip of ${work}/mediagate.1 failed (${rc})")
endif()
