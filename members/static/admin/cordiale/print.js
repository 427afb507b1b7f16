// The transparency report's print button, as a file: the Content-Security-Policy
// allows no inline script.
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) {
    window.print();
  }
});
