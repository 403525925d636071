// What the console tells the operator outside the views: API errors (never swallowed) and
// announcements for screen readers (new and escalated warnings).

const banner = () => document.querySelector('[data-testid="api-error"]');

export function showError(message) {
  const el = banner();
  el.querySelector('.error-text').textContent = message;
  el.hidden = false;
}

export function clearError() {
  banner().hidden = true;
}

export function announce(message) {
  const region = document.querySelector('[data-testid="announcer"]');
  const line = document.createElement('p');
  line.textContent = message;
  region.append(line);
  while (region.childElementCount > 5) region.firstElementChild.remove();
}

document.addEventListener('click', (event) => {
  if (event.target.closest('.error-dismiss')) clearError();
});
