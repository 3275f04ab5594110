import Testing

/// Every suite that runs live servers in this process, run one test at a time.
///
/// Concurrently, the 500-client test would push descriptor numbers past 1023, and a server on the
/// `select` backend in the same process cannot survive that: Debian's libevent is built with
/// `_FORTIFY_SOURCE`, whose `FD_SET` aborts for such a descriptor. (The daemon guards against it
/// by capping its open-file limit on `select`; a test process cannot.) Each test takes well under
/// a second, so running them in series costs little.
@Suite(.serialized) enum LiveServer {}
