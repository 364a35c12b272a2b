using System.Security.Cryptography;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using SecretlessProxy.Core;
using SecretlessProxy.Listeners.Database;
using SecretlessProxy.Runtime;

namespace SecretlessProxy.Listeners.MySql;

/// <summary>
/// <c>Mode: MySql</c>: MySQL and MariaDB connections, never handed to HTTP. <see cref="MySqlConnectionHandler"/>
/// greets the app as a server and logs in at the listener's <c>Upstream</c> with its <c>Credential</c>;
/// the shared database keys compile through <see cref="DatabaseListenerCompiler"/>, the <c>MySql</c>
/// section (RSA key exchange without verified TLS) here.
/// </summary>
internal sealed class MySqlListenerKind : IListenerKind
{
    private const int DefaultMySqlPort = 3306;

    public string Mode => "MySql";

    public IReadOnlyList<InjectionTarget> Injects => DatabaseListenerCompiler.DatabaseInjects;

    // AcceptTls needs the local CA, but only when asked for: checked with the listener.
    public bool InterceptsTls => false;

    public bool ClientSpeaksHttpFirst => false;

    public IReadOnlyCollection<string> OwnKeys { get; } = [.. DatabaseListenerCompiler.Keys, "MySql"];

    public ListenerDefinition? Compile(ListenerCompilation listener)
    {
        var compiled = DatabaseListenerCompiler.Compile(listener, Mode, DefaultMySqlPort, acceptsTls: true);
        var options = listener.Section.GetSection("MySql").Get<MySqlListenerOptions>() ?? new MySqlListenerOptions();
        string? pem = null;
        if (options.ServerPublicKeyFile is { } file)
        {
            var path = listener.RequireFile(file, listener.Key + ":MySql:ServerPublicKeyFile");
            pem = LoadPublicKey(listener, path);
        }

        if (compiled?.Settings is not DatabaseListenerSettings db)
        {
            return null;
        }

        if ((pem is not null || options.AllowPublicKeyRetrieval == true) && db.TlsMode == DatabaseTlsMode.VerifyFull)
        {
            listener.Add("MySql", "ServerPublicKeyFile and AllowPublicKeyRetrieval apply only with Tls:Mode Require or Disable: over verified TLS the password goes to the server as it is");
            return null;
        }

        return new ListenerDefinition(compiled.Name, compiled.Mode, compiled.BindEndPoint, compiled.Unmatched, http: null,
            settings: new MySqlListenerSettings(db, pem, options.AllowPublicKeyRetrieval == true), limits: compiled.Limits, injects: compiled.Injects);
    }

    public void AddServices(IServiceCollection services, TimeProvider time)
    {
        services.AddSingleton<MySqlThreadRegistry>();
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<MySqlConnectionHandler>(sp, time));
    }

    public void Configure(ListenOptions listen, ListenerDefinition listener) =>
        // A raw TCP protocol: the handler owns the connection and never hands it to HTTP.
        listen.Use(_ =>
        {
            var handler = listen.ApplicationServices.GetRequiredService<MySqlConnectionHandler>();
            return connection => handler.OnConnectionAsync(connection, listener.Name);
        });

    public string DescribeDestination(ListenerDefinition listener) =>
        listener.Settings is MySqlListenerSettings mysql ? mysql.Database.Host + ":" + mysql.Database.Port : "the database server";

    private static string? LoadPublicKey(ListenerCompilation listener, string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        var key = listener.Key + ":MySql:ServerPublicKeyFile";
        try
        {
            var pem = File.ReadAllText(path);
            using var rsa = RSA.Create();
            rsa.ImportFromPem(pem);
            return pem;
        }
        catch (Exception ex) when (ex is ArgumentException or CryptographicException or IOException)
        {
            listener.Errors.Add(new(key, "file '" + path + "' is not a PEM RSA public key"));
            return null;
        }
    }
}
