// Once a security key is registered, go on to the page the setup leads to (its address is in
// the page as JSON, #twofactor-enrolled-url). A file of its own: the CSP allows no inline script.
document.addEventListener("otp_webauthn.register_complete", function () {
  window.location.href = JSON.parse(document.getElementById("twofactor-enrolled-url").textContent);
});
