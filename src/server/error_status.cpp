#include "server/error_status.hpp"

namespace mediagate::server {

unsigned status_for(errc e) {
  switch (e) {
    case errc::not_found:
      return 404;
    case errc::bad_key:
      return 400;
    case errc::forbidden:
      return 403;
    case errc::upstream_rejected:
      return 502;
    case errc::upstream_unavailable:
      return 502;
    case errc::upstream_timeout:
      return 504;
    case errc::changed:
      return 503;  // replaced while we read it twice: the client may simply retry
    case errc::io_error:
      return 500;
    case errc::conflict:
      return 409;
    case errc::too_large:
      return 413;
    case errc::bad_body:
      return 400;
    case errc::client_gone:
      return 400;  // for the log: the client is not there to read it
    case errc::unsupported_media:
      return 415;
    case errc::unprocessable:
      return 422;
  }
  return 500;
}

}  // namespace mediagate::server
