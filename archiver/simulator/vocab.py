"""Word lists the generators draw from: realistic names keep the simulated data believable.

Pure data, no logic, so the generators stay readable.
"""

from __future__ import annotations

PROJECT_PLATFORMS: tuple[tuple[str, str, str], ...] = (
    # (event platform, project slug, project name)
    ("python", "backend", "Backend API"),
    ("javascript", "frontend", "Web Frontend"),
    ("java", "payments-service", "Payments Service"),
    ("cocoa", "ios-app", "iOS App"),
    ("php", "legacy-web", "Legacy Website"),
    ("native", "game-engine", "Game Engine"),
    ("node", "edge-worker", "Edge Worker"),
    ("ruby", "billing", "Billing"),
)

ENVIRONMENTS: tuple[str, ...] = ("production", "staging", "development", "qa 2")
"""``qa 2`` has a space on purpose: it must survive URL encoding and the Link header."""

PY_EXCEPTIONS: tuple[tuple[str, str, str], ...] = (
    ("KeyError", "builtins", "'customer_id'"),
    ("ValueError", "builtins", "invalid literal for int() with base 10: 'abc'"),
    (
        "IntegrityError",
        "django.db.utils",
        'duplicate key value violates unique constraint "orders_pkey"',
    ),
    ("OperationalError", "psycopg2", "could not connect to server: Connection refused"),
    ("TimeoutError", "builtins", "timed out after 30.0 seconds"),
    ("AttributeError", "builtins", "'NoneType' object has no attribute 'email'"),
    ("ZeroDivisionError", "builtins", "division by zero"),
    (
        "ConnectionError",
        "requests.exceptions",
        "HTTPSConnectionPool(host='api.stripe.com', port=443): Max retries exceeded",
    ),
    (
        "PermissionDenied",
        "django.core.exceptions",
        "You do not have permission to perform this action.",
    ),
    (
        "UnicodeDecodeError",
        "builtins",
        "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
    ),
)
PY_MODULES: tuple[str, ...] = (
    "acme.api.views",
    "acme.api.serializers",
    "acme.billing.invoices",
    "acme.orders.models",
    "acme.orders.tasks",
    "acme.users.auth",
    "acme.search.indexer",
    "acme.utils.retry",
    "django.core.handlers.base",
    "django.db.models.query",
    "celery.app.trace",
    "requests.sessions",
)
PY_FUNCTIONS: tuple[str, ...] = (
    "get",
    "post",
    "dispatch",
    "handle_request",
    "process_order",
    "charge_card",
    "create_invoice",
    "send_receipt",
    "validate",
    "to_representation",
    "save",
    "run",
    "__call__",
    "execute",
    "fetch_customer",
    "reindex",
    "authenticate",
    "_get_response",
    "wrapped_view",
    "apply_async",
)
JS_ERRORS: tuple[tuple[str, str], ...] = (
    ("TypeError", "Cannot read properties of undefined (reading 'map')"),
    ("ReferenceError", "ga is not defined"),
    ("ChunkLoadError", "Loading chunk 842 failed."),
    ("Error", "Request failed with status code 502"),
    ("SyntaxError", "Unexpected token '<', \"<!DOCTYPE \"... is not valid JSON"),
    ("RangeError", "Maximum call stack size exceeded"),
    ("ForbiddenError", "GET /organizations/acme/users/ 403"),
    ("UnhandledRejection", "Non-Error promise rejection captured with value: undefined"),
)
JS_FILES: tuple[str, ...] = (
    "app/components/OrderList.tsx",
    "app/views/Checkout.tsx",
    "app/api/client.ts",
    "app/stores/cartStore.ts",
    "app/utils/format.ts",
    "node_modules/react-dom/cjs/react-dom.production.min.js",
    "node_modules/@sentry/browser/esm/helpers.js",
    "node_modules/axios/lib/core/settle.js",
)
JS_FUNCTIONS: tuple[str, ...] = (
    "renderOrders",
    "onSubmit",
    "handleClick",
    "fetchJSON",
    "dispatchAction",
    "commitRoot",
    "invokeGuardedCallback",
    "settle",
    "ignoreOnError",
    "formatPrice",
    "useEffect",
    "loadChunk",
)
JAVA_EXCEPTIONS: tuple[tuple[str, str], ...] = (
    (
        "java.lang.NullPointerException",
        "Attempt to invoke virtual method 'java.lang.String com.acme.Customer.getEmail()' "
        "on a null object reference",
    ),
    ("java.lang.IllegalStateException", "Transaction already completed"),
    (
        "java.sql.SQLTransientConnectionException",
        "HikariPool-1 - Connection is not available, request timed out after 30000ms.",
    ),
    ("java.util.concurrent.TimeoutException", "Timeout waiting for task."),
    (
        "org.springframework.dao.DataIntegrityViolationException",
        "could not execute statement; constraint [payments_idempotency_key]",
    ),
    ("java.lang.OutOfMemoryError", "Java heap space"),
)
JAVA_CLASSES: tuple[str, ...] = (
    "com.acme.payments.PaymentController",
    "com.acme.payments.PaymentService",
    "com.acme.payments.LedgerRepository",
    "com.acme.payments.fraud.RiskScorer",
    "org.springframework.web.servlet.FrameworkServlet",
    "org.hibernate.internal.SessionImpl",
    "com.zaxxer.hikari.pool.HikariPool",
    "java.util.concurrent.FutureTask",
    "java.lang.Thread",
    "org.apache.catalina.core.ApplicationFilterChain",
)
JAVA_METHODS: tuple[str, ...] = (
    "capture",
    "charge",
    "refund",
    "persist",
    "score",
    "service",
    "doFilter",
    "run",
    "call",
    "getConnection",
    "flush",
    "lambda$submit$0",
    "handleRequest",
)
COCOA_SIGNALS: tuple[tuple[str, str, str], ...] = (
    ("EXC_BAD_ACCESS", "KERN_INVALID_ADDRESS at 0x0000000000000010", "mach"),
    ("SIGABRT", "Signal 6, Code 0", "signal"),
    (
        "NSInvalidArgumentException",
        "-[__NSCFString count]: unrecognized selector sent to instance 0x2811f4a80",
        "nsexception",
    ),
    (
        "NSRangeException",
        "*** -[__NSArrayM objectAtIndex:]: index 5 beyond bounds [0 .. 4]",
        "nsexception",
    ),
    (
        "EXC_CRASH",
        "Thread 3: Fatal error: Unexpectedly found nil while unwrapping an Optional value",
        "mach",
    ),
)
COCOA_SYMBOLS: tuple[str, ...] = (
    "-[CheckoutViewController viewDidLoad]",
    "-[OrderCell configureWithOrder:]",
    "CartStore.applyCoupon(_:)",
    "closure #1 in ProfileView.body.getter",
    "__pthread_kill",
    "objc_exception_throw",
    "-[NSObject(NSObject) doesNotRecognizeSelector:]",
    "UIApplicationMain",
    "main",
    "start",
    "_dispatch_call_block_and_release",
    "CFRunLoopRunSpecific",
    "abort",
)
COCOA_IMAGES: tuple[str, ...] = (
    "/private/var/containers/Bundle/Application/5E2A/AcmeShop.app/AcmeShop",
    "/usr/lib/system/libsystem_kernel.dylib",
    "/usr/lib/system/libsystem_pthread.dylib",
    "/System/Library/Frameworks/UIKit.framework/UIKit",
    "/usr/lib/libobjc.A.dylib",
    "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation",
    "/usr/lib/system/libdispatch.dylib",
)
NATIVE_CRASHES: tuple[tuple[str, str], ...] = (
    ("EXCEPTION_ACCESS_VIOLATION_READ", "Fatal Error: EXCEPTION_ACCESS_VIOLATION_READ"),
    ("SIGSEGV", "Segfault"),
    ("EXCEPTION_STACK_OVERFLOW", "Fatal Error: EXCEPTION_STACK_OVERFLOW"),
    (
        "std::out_of_range",
        "vector::_M_range_check: __n (which is 12) >= this->size() (which is 12)",
    ),
)
NATIVE_SYMBOLS: tuple[str, ...] = (
    "Renderer::drawFrame(Scene const&)",
    "Physics::World::step(float)",
    "AssetCache::load(std::string const&)",
    "AudioMixer::mix(float*, unsigned long)",
    "std::vector<Entity, std::allocator<Entity> >::at(unsigned long)",
    "main",
    "RtlUserThreadStart",
    "BaseThreadInitThunk",
    "KiUserExceptionDispatcher",
    "memcpy",
)
PHP_EXCEPTIONS: tuple[tuple[str, str], ...] = (
    ("ErrorException", "Undefined index: cart_id"),
    ("PDOException", "SQLSTATE[HY000] [2002] Connection refused"),
    ("TypeError", "Argument 1 passed to App\\Cart::add() must be of the type int, string given"),
    (
        "Symfony\\Component\\HttpKernel\\Exception\\NotFoundHttpException",
        'No route found for "GET /wp-login.php"',
    ),
)
PHP_FILES: tuple[str, ...] = (
    "/var/www/html/app/Http/Controllers/CartController.php",
    "/var/www/html/app/Cart.php",
    "/var/www/html/vendor/laravel/framework/src/Illuminate/Routing/Pipeline.php",
    "/var/www/html/vendor/laravel/framework/src/Illuminate/Database/Connection.php",
    "/var/www/html/public/index.php",
)
NODE_ERRORS: tuple[tuple[str, str], ...] = (
    ("Error", "connect ECONNREFUSED 10.0.3.17:6379"),
    ("FetchError", "request to https://api.acme.io/v2/prices failed, reason: socket hang up"),
    ("TypeError", "Cannot destructure property 'id' of 'req.body' as it is undefined."),
    ("AbortError", "The operation was aborted."),
)
RUBY_ERRORS: tuple[tuple[str, str], ...] = (
    ("ActiveRecord::RecordNotFound", "Couldn't find Invoice with 'id'=98123"),
    ("Stripe::CardError", "Your card was declined."),
    ("NoMethodError", "undefined method `amount' for nil:NilClass"),
    ("Net::ReadTimeout", "Net::ReadTimeout with #<TCPSocket:(closed)>"),
)
LOG_MESSAGES: tuple[str, ...] = (
    "Payment provider responded slowly (%s ms)",
    "Retrying job %s after failure",
    "Cache miss storm detected for key %s",
    "User %s exceeded export quota",
    "Webhook signature mismatch for endpoint %s",
)
USER_FIRST: tuple[str, ...] = (
    "Alice",
    "Bob",
    "Chen",
    "Dana",
    "Emre",
    "Fatima",
    "Gustavo",
    "Hana",
    "Ivan",
    "Jana",
    "Kwame",
    "Laila",
    "Mateo",
    "Noor",
    "Olga",
    "Pedro",
    "Qing",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
)
USER_LAST: tuple[str, ...] = (
    "Smith",
    "Müller",
    "Wang",
    "García",
    "Kowalski",
    "Okafor",
    "Nakamura",
    "Rossi",
    "Haddad",
    "Johansson",
    "Silva",
    "Novak",
    "O'Brien",
    "Dubois",
)
BROWSERS: tuple[tuple[str, str], ...] = (
    ("Chrome", "124.0.6367"),
    ("Firefox", "126.0"),
    ("Safari", "17.4.1"),
    ("Edge", "124.0.2478"),
    ("Mobile Safari", "17.5"),
    ("Samsung Internet", "25.0"),
)
OSES: tuple[tuple[str, str], ...] = (
    ("Windows", "10"),
    ("Mac OS X", "14.4.1"),
    ("Linux", "6.5"),
    ("iOS", "17.5"),
    ("Android", "14"),
    ("Windows", "11"),
)
UNICODE_SNIPPETS: tuple[str, ...] = (
    "注文を処理できませんでした",
    "支付失败，请稍后重试",
    "결제 실패",
    "Ошибка оплаты",
    "שגיאה בתשלום",
    "خطأ في الدفع",
    "💥🔥 checkout broke 🙈",
    "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǫ̗̪",
    "naïve café – “quotes” ‘single’ … ½",
)
