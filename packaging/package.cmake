# Installing mediagate, its man page and the Debian package (included by the top CMakeLists.txt).
#
#   cpack -G DEB --config build/CPackConfig.cmake     ->  mediagate_<version>_amd64.deb  (scripts/package.sh)
#
# The package holds /usr/bin/mediagate (the web page is compiled in), the systemd unit, the environment file
# /etc/mediagate/mediagate.conf (a conffile) and the man page; its maintainer scripts (postinst, prerm, postrm)
# create the mediagate system user and its directories and enable the service the way dh_installsystemd does.
# Dependencies: the shared libraries the binary links, found by dpkg-shlibdeps, plus ffmpeg for probing.
include(GNUInstallDirs)
# `cpack` and `make install` install what was built, without building every target first (the tests and
# benchmarks are not in the package): build mediagate and mediagate_man before (scripts/package.sh does).
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

install(TARGETS mediagate RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# Debian 12 packages ship units in /lib/systemd/system and configuration in /etc, whatever the prefix.
install(FILES ${CMAKE_CURRENT_LIST_DIR}/mediagate.service DESTINATION /lib/systemd/system)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/mediagate.conf DESTINATION /etc/mediagate
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)

# The man page, made from the program's own --help texts (help2man, then gzip -9n as Debian wants).
find_program(HELP2MAN help2man)
find_program(GZIP gzip)
if(HELP2MAN AND GZIP)
  set(MEDIAGATE_MAN ${CMAKE_BINARY_DIR}/packaging/mediagate.1.gz)
  add_custom_command(OUTPUT ${MEDIAGATE_MAN}
                     COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:mediagate> -DHELP2MAN=${HELP2MAN} -DGZIP=${GZIP}
                             -DINCLUDE=${CMAKE_CURRENT_LIST_DIR}/mediagate.h2m -DOUTPUT=${MEDIAGATE_MAN}
                             -P ${CMAKE_CURRENT_LIST_DIR}/manpage.cmake
                     DEPENDS mediagate ${CMAKE_CURRENT_LIST_DIR}/manpage.cmake ${CMAKE_CURRENT_LIST_DIR}/mediagate.h2m
                     COMMENT "Making the man page mediagate.1 from --help" VERBATIM)
  add_custom_target(mediagate_man ALL DEPENDS ${MEDIAGATE_MAN})
  install(FILES ${MEDIAGATE_MAN} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  message(WARNING "help2man or gzip not found: no man page, and the package lacks one "
                  "(scripts/install-deps.sh installs help2man)")
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mediagate)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "mediagate maintainers <mediagate@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "streams media from a directory or S3-compatible storage to browsers")
# The Description's first line is the summary above; this is the extended text under it.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "mediagate serves video, audio and images over HTTP with exact RFC 9110 range and
conditional-request semantics, from a local directory or an S3-compatible bucket,
with a slice cache, a catalog and JSON API, uploads, signed links and metrics.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # mediagate_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION video)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# ffprobe/ffmpeg probe items and make posters; adduser makes the system user in postinst.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "ffmpeg, adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "haproxy")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_CURRENT_LIST_DIR}/conffiles ${CMAKE_CURRENT_LIST_DIR}/postinst
                                       ${CMAKE_CURRENT_LIST_DIR}/prerm ${CMAKE_CURRENT_LIST_DIR}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_STRIP_FILES ON)
include(CPack)
