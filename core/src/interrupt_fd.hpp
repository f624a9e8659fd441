// A descriptor for waits that sleep until something happens instead of
// waking on a clock to look at cancel_requested() (vmlat/interrupt.hpp):
// the controller waits on every remote host's cell at once, for the whole of
// each cell.
#pragma once

namespace vmlat {

// poll() reports it readable from the moment the run is cancelled, and it
// stays so until reset_cancel(). -1 before install_cancel_handlers() or when
// the kernel gave none: then a wait must use a timeout.
int cancel_wakeup_fd() noexcept;

}  // namespace vmlat
