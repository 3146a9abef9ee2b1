// Redraws coalesced per animation frame: many stream messages between two frames cost one
// redraw. Errors in a redraw are reported, never leave the scheduler stuck.

let pending = false;
const tasks = new Set<() => void>();

export function onNextFrame(task: () => void): void {
  tasks.add(task);
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    const run = [...tasks];
    tasks.clear();
    for (const t of run) {
      try {
        t();
      } catch (err) {
        console.error(err);
      }
    }
  });
}
