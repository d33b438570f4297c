// ServiceGraph's GraphiQL bootstrap: reads the page's data- attributes, gets
// a bearer token (the development token prefilled, or one the user pastes,
// kept in sessionStorage), checks it against the server and mounts GraphiQL.
// Served from the binary like React and GraphiQL; no inline script, so the
// page keeps its strict Content-Security-Policy.
(function () {
  "use strict";

  var TOKEN_KEY = "servicegraph.graphiql.token";
  var root = document.getElementById("servicegraph");
  var settings = {
    endpoint: root.getAttribute("data-endpoint") || "/graphql",
    subscriptionEndpoint: root.getAttribute("data-subscription-endpoint") || "/graphql/ws",
    devToken: root.getAttribute("data-dev-token"),
  };
  var el = {
    status: document.getElementById("sg-status"),
    change: document.getElementById("sg-change-token"),
    connect: document.getElementById("sg-connect"),
    form: document.getElementById("sg-token-form"),
    token: document.getElementById("sg-token"),
    error: document.getElementById("sg-token-error"),
    button: document.getElementById("sg-connect-button"),
    graphiql: document.getElementById("graphiql"),
  };
  var reactRoot = null;

  var DEFAULT_QUERY =
    "# ServiceGraph's GraphQL API. Run an operation with the run button or Ctrl-Enter;\n" +
    "# Ctrl-Space completes fields, and the docs pane (book icon) shows the schema.\n" +
    "\n" +
    "{\n" +
    "  me {\n" +
    "    subject\n" +
    "  }\n" +
    "}\n";

  function websocketUrl(path) {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + path;
  }

  function storedToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY);
    } catch (e) {
      return null;
    }
  }

  function storeToken(token) {
    try {
      if (token) {
        window.sessionStorage.setItem(TOKEN_KEY, token);
      } else {
        window.sessionStorage.removeItem(TOKEN_KEY);
      }
    } catch (e) {
      // Storage refused (private mode, policy): the token lasts until reload.
    }
  }

  // "Bearer abc", "abc" or a pasted {"Authorization": "Bearer abc"} all give "abc".
  function cleanToken(text) {
    var token = (text || "").trim();
    if (token.charAt(0) === "{") {
      try {
        var headers = JSON.parse(token);
        token = String(headers.Authorization || headers.authorization || "").trim();
      } catch (e) {
        return token;
      }
    }
    return token.replace(/^bearer\s+/i, "").trim();
  }

  function errorOf(body) {
    var error = body && body.errors && body.errors[0];
    if (!error) {
      return null;
    }
    var code = error.extensions && error.extensions.code;
    return (code ? code + ": " : "") + error.message;
  }

  // Asks the server whether it accepts the token: { ok } or { ok: false, message }.
  function checkToken(token) {
    return window
      .fetch(settings.endpoint, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/graphql-response+json, application/json",
          Authorization: "Bearer " + token,
        },
        body: JSON.stringify({ query: "{ __typename }" }),
      })
      .then(function (response) {
        return response.text().then(function (text) {
          var body = null;
          try {
            body = JSON.parse(text);
          } catch (e) {
            body = null;
          }
          if (response.ok && body && body.data && !body.errors) {
            return { ok: true };
          }
          var detail = errorOf(body) || "HTTP " + response.status;
          var rejected =
            response.status === 401 ||
            (body && body.errors && body.errors.some(function (e) {
              return e.extensions && e.extensions.code === "UNAUTHENTICATED";
            }));
          return {
            ok: false,
            message: rejected
              ? "The server rejected this token (" + detail + "). Check that it is complete, not expired, and signed for this server."
              : "The server could not check the token (" + detail + "). Try again in a moment.",
          };
        });
      })
      .catch(function (e) {
        return { ok: false, message: "Cannot reach the server: " + e.message };
      });
  }

  function setStatus(text) {
    el.status.textContent = text;
  }

  function showPrompt(message) {
    unmount();
    el.change.hidden = true;
    el.connect.hidden = false;
    el.graphiql.hidden = true;
    setStatus("not connected");
    el.error.textContent = message || "";
    el.error.hidden = !message;
    el.button.disabled = false;
    el.token.focus();
  }

  function unmount() {
    if (reactRoot) {
      reactRoot.unmount();
      reactRoot = null;
    }
  }

  // A token that stops working while GraphiQL is open (it expired) is said
  // so above the editor, with the way to change it.
  function watchRejection(result) {
    if (result && typeof result.then === "function") {
      result.then(function (value) {
        var errors = value && value.errors;
        if (errors && errors.some(function (e) {
          return e.extensions && e.extensions.code === "UNAUTHENTICATED";
        })) {
          setStatus("the server rejected the token: change it");
        }
      }, function () {});
    }
    return result;
  }

  function mount(options) {
    unmount();
    el.connect.hidden = true;
    el.graphiql.hidden = false;
    var fetcherOptions = {
      url: settings.endpoint,
      subscriptionUrl: websocketUrl(settings.subscriptionEndpoint),
      headers: options.headers || {},
      wsConnectionParams: options.headers || {},
    };
    if (options.schemaHeaders) {
      // GraphiQL introspects once on mount, before its headers pane exists,
      // so without headers: the schema is fetched with the pane's headers
      // when there are some, else with the prefilled ones.
      fetcherOptions.schemaFetcher = function (params, opts) {
        var headers = (opts && opts.headers) || options.schemaHeaders;
        return window
          .fetch(settings.endpoint, {
            method: "POST",
            headers: Object.assign({ "Content-Type": "application/json" }, headers),
            body: JSON.stringify(params),
          })
          .then(function (response) {
            return response.json();
          });
      };
    }
    var baseFetcher = window.GraphiQL.createFetcher(fetcherOptions);
    var fetcher = function (params, opts) {
      return watchRejection(baseFetcher(params, opts));
    };
    var props = {
      fetcher: fetcher,
      defaultQuery: DEFAULT_QUERY,
      shouldPersistHeaders: false,
    };
    if (options.editorHeaders) {
      props.headers = options.editorHeaders;
      props.defaultEditorToolsVisibility = "headers";
    }
    reactRoot = window.ReactDOM.createRoot(el.graphiql);
    reactRoot.render(window.React.createElement(window.GraphiQL, props));
  }

  function connectWith(token) {
    mount({ headers: { Authorization: "Bearer " + token } });
    el.change.hidden = false;
    setStatus("connected with a bearer token");
  }

  el.form.addEventListener("submit", function (event) {
    event.preventDefault();
    var token = cleanToken(el.token.value);
    if (!token) {
      showPrompt("Paste a bearer token first.");
      return;
    }
    el.button.disabled = true;
    el.error.hidden = true;
    setStatus("checking the token…");
    checkToken(token).then(function (answer) {
      if (answer.ok) {
        storeToken(token);
        el.token.value = "";
        connectWith(token);
      } else {
        showPrompt(answer.message);
      }
    });
  });

  el.change.addEventListener("click", function () {
    storeToken(null);
    showPrompt("");
  });

  if (!window.React || !window.ReactDOM || !window.GraphiQL) {
    el.connect.hidden = true;
    setStatus("GraphiQL's scripts did not load; reload the page");
    return;
  }

  if (settings.devToken) {
    // Development mode on a loopback address: the printed admin token, in
    // the headers pane where it can be changed.
    var devHeaders = { Authorization: "Bearer " + settings.devToken };
    mount({
      editorHeaders: JSON.stringify(devHeaders, null, 2),
      schemaHeaders: devHeaders,
    });
    setStatus("development mode: the admin token is in the headers pane");
    return;
  }

  var saved = storedToken();
  if (!saved) {
    showPrompt("");
    return;
  }
  setStatus("checking the saved token…");
  checkToken(saved).then(function (answer) {
    if (answer.ok) {
      connectWith(saved);
    } else {
      storeToken(null);
      showPrompt(answer.message);
    }
  });
})();
