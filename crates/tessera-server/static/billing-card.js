// The card page (/billing/card): Stripe.js's Card Element collects the card in the browser and
// confirmCardSetup sends it straight to the payment provider. Only the SetupIntent's id comes
// back to Tessera, which then asks the provider which card was saved.
(function () {
  "use strict";
  const form = document.getElementById("card-form");
  if (!form) return;
  const errors = document.getElementById("card-errors");
  const button = document.getElementById("card-submit");
  const fail = (message) => {
    errors.textContent = message;
    errors.hidden = false;
    button.disabled = false;
  };
  if (typeof Stripe !== "function") {
    button.disabled = true;
    fail("The payment form could not load (Stripe.js is unreachable). Reload the page to try again.");
    button.disabled = true;
    return;
  }
  const stripe = Stripe(form.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    errors.hidden = true;
    let result;
    try {
      result = await stripe.confirmCardSetup(form.dataset.clientSecret, {
        payment_method: { card },
      });
    } catch (err) {
      result = { error: { message: String(err && err.message ? err.message : err) } };
    }
    if (result.error || !result.setupIntent) {
      fail((result.error && result.error.message) || "The card was not accepted. Check it and try again.");
      return;
    }
    document.getElementById("setup-intent-id").value = result.setupIntent.id;
    // form.submit() does not fire "submit" again.
    form.submit();
  });
})();
